//! Test support (feature `testing`): `TestBroker` for [`RabbitBroker`], so that a
//! service's `TestApp` tests run against a live server.
//!
//! The test app knows the handlers are done by the `message-id` of each publish, which
//! travels as the AMQP `message_id` property.

use ruststream::testing::TestBroker;

use crate::broker::RabbitBroker;

impl TestBroker for RabbitBroker {}
