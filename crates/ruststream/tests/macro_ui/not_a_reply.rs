use ruststream::subscriber;

struct Receipt;

#[subscriber("orders")]
async fn handle_order(order: u64) -> Receipt {
    let _ = order;
    Receipt
}

fn main() {}
