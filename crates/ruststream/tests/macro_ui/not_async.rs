use ruststream::subscriber;

#[subscriber("orders")]
fn handle_order(order: u64) {
    let _ = order;
}

fn main() {}
