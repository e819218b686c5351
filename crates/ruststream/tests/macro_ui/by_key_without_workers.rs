use ruststream::subscriber;

#[subscriber("orders", by_key)]
async fn handle_order(order: u64) {
    let _ = order;
}

fn main() {}
