// `stream` borrows the subscriber mutably: two streams of it cannot be alive at once.
use ruststream::Subscriber;
use ruststream::memory::MemorySubscriber;

fn read_twice(subscriber: &mut MemorySubscriber) {
    let first = subscriber.stream();
    let second = subscriber.stream();
    drop((first, second));
}

fn main() {
    let _ = read_twice;
}
