// `commit` consumes the transaction: it cannot be committed twice.
use ruststream::Transaction;
use ruststream::memory::MemoryTransaction;

async fn publish_all(transaction: MemoryTransaction) {
    let _ = transaction.commit().await;
    let _ = transaction.commit().await;
}

fn main() {
    let _ = publish_all;
}
