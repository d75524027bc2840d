"""Benchmarks of the bundled broker beside mosquitto and amqtt; never run by the test suite."""
