use ruststream::subscriber;

struct Connection;

#[subscriber("orders")]
async fn handle_order(order: u64, connection: Connection) {
    let _ = (order, connection);
}

fn main() {}
