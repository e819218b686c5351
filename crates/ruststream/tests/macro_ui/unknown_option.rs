use ruststream::subscriber;

#[subscriber("orders", wrokers = 4)]
async fn handle_order(order: u64) {
    let _ = order;
}

fn main() {}
