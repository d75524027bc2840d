"""Rewrite MQTT broker configs from the preallocated client pool to the dynamic one, and back."""
