//! A thermostat service on MQTT, written as `app(broker: MqttBroker) -> App`: `main` runs
//! it against a server, and its tests (`tests/mqtt_service.rs`) run the same function
//! under `TestApp` twice, in process (`MqttBroker::in_process()`) and against a live
//! Mosquitto on MQTT 5.
//!
//! Needs an MQTT server on 127.0.0.1:1883 (`mosquitto -p 1883`):
//! `cargo run -p ruststream-examples --example mqtt_service`

use ruststream::runtime::{App, Router, Settle};
use ruststream::subscriber;
use ruststream_mqtt::{Config, MqttBroker, MqttSource, Protocol, Qos};
use serde::{Deserialize, Serialize};

/// A temperature reading of a room (`home/<room>/temperature`).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Reading {
    pub(crate) room: String,
    pub(crate) celsius: f64,
}

/// What the thermostat decides: the answer to a request, also sent to `home/heating`.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Heating {
    pub(crate) room: String,
    pub(crate) on: bool,
}

/// Decides the heating of each room; the service's instances share the readings
/// (`$share/thermostat/...`), at QoS 1, each acknowledged once handled.
#[subscriber(
    MqttSource::new("home/+/temperature").shared("thermostat").qos(Qos::AtLeastOnce),
    name = "thermostat",
    publish_to = "home/heating"
)]
async fn thermostat(reading: Reading) -> Heating {
    Heating {
        on: reading.celsius < 19.0,
        room: reading.room,
    }
}

/// Logs sensor faults; a reading out of range is dropped (acknowledged, not handled).
#[subscriber(MqttSource::new("home/+/fault"), name = "fault")]
async fn fault(reading: Reading) -> Settle {
    if (-40.0..=80.0).contains(&reading.celsius) {
        println!("fault in {}: {} °C", reading.room, reading.celsius);
        Settle::Ack
    } else {
        Settle::Drop
    }
}

/// The whole service, on whichever `MqttBroker` it is given.
pub(crate) fn app(broker: MqttBroker) -> App {
    App::new("thermostat").broker(
        broker,
        Router::new().subscriber(thermostat).subscriber(fault),
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::new(Protocol::V5, "127.0.0.1", 1883, "thermostat-1");
    // Runs until SIGINT/SIGTERM, then drains in-flight handlers and disconnects.
    app(MqttBroker::new(config)).run().await?;
    Ok(())
}
