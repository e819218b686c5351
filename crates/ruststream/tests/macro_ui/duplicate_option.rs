use ruststream::subscriber;

#[subscriber("orders", workers = 2, format = Json, workers = 4, codec = MsgPack)]
async fn handle_order(order: u64) {
    let _ = order;
}

fn main() {}
