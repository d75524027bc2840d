"""A locust worker process running MqttUser; `python -m loadtest.worker --master-port P`.

The same process can run on another machine: point --master-host at the machine where
`loadtest run --remote-workers N --master-bind-host 0.0.0.0` waits for it.
"""

from __future__ import annotations

# locust patches the standard library for gevent when imported, so it comes first.
import locust  # isort: skip

import argparse
import logging
import sys

from locust.env import Environment

from loadtest.limits import raise_open_file_limit
from loadtest.mqtt_user import LOOP, MqttUser

logger = logging.getLogger(__name__)


def run_worker(master_host: str, master_port: int) -> int:
    """Connect to the locust master, run the users it assigns, and return when it sends quit."""
    raise_open_file_limit()
    environment = Environment(user_classes=[MqttUser], events=locust.events)
    runner = environment.create_worker_runner(master_host, master_port)
    environment.events.init.fire(environment=environment, runner=runner, web_ui=None)
    logger.info("Worker connected to the master at %s:%d.", master_host, master_port)
    try:
        runner.greenlet.join()
    except KeyboardInterrupt:
        runner.quit()
    finally:
        LOOP.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--master-host", default="127.0.0.1", help="address of the loadtest master (default 127.0.0.1)")
    parser.add_argument("--master-port", type=int, required=True, help="port the master listens on for workers")
    parser.add_argument("--log-level", default="WARNING", help="logging level for this worker (default WARNING)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_worker(args.master_host, args.master_port)


if __name__ == "__main__":
    sys.exit(main())
