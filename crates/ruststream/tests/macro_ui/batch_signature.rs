use ruststream::runtime::State;
use ruststream::subscriber;

#[derive(serde::Deserialize)]
struct Order {}

#[subscriber("orders", batch = 10)]
async fn take_orders(_orders: Vec<Order>, _state: State<u64>) {}

#[subscriber("orders", batch = 10)]
async fn take_one(_order: Order) {}

fn main() {}
