"""Load tests for MQTT brokers: locust users holding paho-mqtt connections, memory checks and reports."""
