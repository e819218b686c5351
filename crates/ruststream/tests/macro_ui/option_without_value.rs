use ruststream::subscriber;

#[subscriber("orders", max_attempts)]
async fn handle_order(order: u64) {
    let _ = order;
}

#[subscriber("refunds", dead_letter = , workers = 2)]
async fn handle_refund(order: u64) {
    let _ = order;
}

fn main() {}
