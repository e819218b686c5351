use ruststream::subscriber;

const ORDERS: &str = "orders";

#[subscriber(ORDERS)]
async fn handle_order(order: u64) {
    let _ = order;
}

fn main() {}
