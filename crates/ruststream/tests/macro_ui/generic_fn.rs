use ruststream::subscriber;

#[subscriber("orders")]
async fn handle_order<T: serde::de::DeserializeOwned>(order: T) {
    let _ = order;
}

fn main() {}
