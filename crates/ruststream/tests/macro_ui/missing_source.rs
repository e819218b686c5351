use ruststream::subscriber;

#[subscriber(workers = 4)]
async fn handle_order(order: u64) {
    let _ = order;
}

#[subscriber]
async fn handle_refund(order: u64) {
    let _ = order;
}

fn main() {}
