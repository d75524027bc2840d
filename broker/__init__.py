"""An asyncio MQTT broker whose client pool grows on demand."""

__version__ = "0.1.0"
