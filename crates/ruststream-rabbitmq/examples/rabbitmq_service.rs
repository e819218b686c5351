//! A RabbitMQ service and its producer in one program: orders go through a topic
//! exchange into a quorum queue, a handler bills them, and a request is answered by a
//! handler's return value.
//!
//! ```text
//! rabbitmq-server -detached
//! cargo run -p ruststream-rabbitmq --example rabbitmq_service
//! ```

use std::time::Duration;

use ruststream::runtime::{App, Router};
use ruststream::{Broker, OutgoingMessage, Publisher, RequestReply, subscriber};
use ruststream_rabbitmq::{Config, RabbitBroker, RabbitExchange, RabbitQueue};

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Order {
    id: u64,
    amount: f64,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Receipt {
    id: u64,
    billed: f64,
}

/// Created orders of every region, from the `shop.orders` topic exchange.
#[subscriber(
    RabbitQueue::new("shop.billing")
        .quorum()
        .bind(RabbitExchange::topic("shop.orders"), "orders.*.created"),
    workers = 4
)]
async fn bill(order: Order) -> Receipt {
    println!("billing order {} ({})", order.id, order.amount);
    Receipt {
        id: order.id,
        billed: order.amount,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("RUSTSTREAM_RABBITMQ_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
    let config = Config::new(url).connection_name("shop-billing");
    let service = App::new("shop")
        .broker(
            RabbitBroker::new(config.clone()),
            Router::new().subscriber(bill),
        )
        .start()
        .await?;

    let producer = RabbitBroker::new(config.connection_name("shop-producer"));
    producer.connect().await?;
    let orders = producer.publisher(RabbitExchange::topic("shop.orders"));
    for (id, region) in [(1, "eu"), (2, "us")] {
        let order = serde_json::to_vec(&Order { id, amount: 9.5 })?;
        orders
            .publish(OutgoingMessage::new(
                &format!("orders.{region}.created"),
                &order,
            ))
            .await?;
    }
    // A request: the handler's return value is the reply.
    let order = serde_json::to_vec(&Order {
        id: 3,
        amount: 20.0,
    })?;
    let reply = orders
        .request(
            OutgoingMessage::new("orders.eu.created", &order),
            Duration::from_secs(5),
        )
        .await?;
    let receipt: Receipt = serde_json::from_slice(&reply.payload)?;
    println!("receipt for order {}: {}", receipt.id, receipt.billed);

    producer.shutdown().await?;
    service.shutdown().await?;
    Ok(())
}
