use ruststream::subscriber;

#[derive(serde::Deserialize)]
struct Order {}

#[subscriber("orders", max_wait = "50ms")]
async fn without_batch(_order: Order) {}

#[subscriber("orders", batch = 10, max_wait = "fifty")]
async fn not_a_wait(_orders: Vec<Order>) {}

fn main() {}
