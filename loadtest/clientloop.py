"""One epoll loop that drives every paho-mqtt client of a locust worker process.

paho's own loops call select() on three file descriptors per client (its socket and a
wake-up socket pair), which caps one process at about 340 clients. Here each client
keeps only its socket, paho reports socket changes through its on_socket_* callbacks,
and a single greenlet waits on one epoll object whose descriptor gevent watches, so
thousands of clients share one process without blocking locust's other greenlets.
"""

from __future__ import annotations

import time

import gevent
from gevent import monkey
from gevent.socket import wait_read
from paho.mqtt.client import Client

# gevent's patched select module drops epoll; the original blocks, but it is only ever
# polled with a zero timeout after gevent reports its descriptor readable.
_select = monkey.get_original("select", ("epoll", "EPOLLIN", "EPOLLOUT", "EPOLLERR", "EPOLLHUP"))
_epoll, EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP = _select

# Seconds between loop_misc() rounds, which send PINGREQ and detect dead connections;
# paho's own loop uses the same one-second granularity.
MISC_INTERVAL = 1.0


class ClientLoop:
    """Drive many paho clients from one epoll object, inside one gevent greenlet."""

    def __init__(self) -> None:
        self._epoll = _epoll()
        self._clients: dict[int, Client] = {}
        self._greenlet: gevent.Greenlet | None = None

    def __len__(self) -> int:
        return len(self._clients)

    def attach(self, client: Client) -> None:
        """Route `client`'s socket events through this loop; call before connect()."""
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        if self._greenlet is None or self._greenlet.dead:
            self._greenlet = gevent.spawn(self._run)

    def discard(self, client: Client) -> None:
        """Stop watching `client` and close its socket without sending DISCONNECT."""
        sock = client.socket()
        if sock is None:
            return
        self._on_socket_close(client, None, sock)
        sock.close()

    def close(self) -> None:
        """Stop the loop greenlet and release the epoll descriptor."""
        if self._greenlet is not None:
            self._greenlet.kill(block=True)
        self._epoll.close()

    def _on_socket_open(self, client: Client, userdata: object, sock: object) -> None:
        fd = sock.fileno()
        self._clients[fd] = client
        self._epoll.register(fd, EPOLLIN)

    def _on_socket_close(self, client: Client, userdata: object, sock: object) -> None:
        fd = sock.fileno()
        if self._clients.pop(fd, None) is not None:
            self._epoll.unregister(fd)

    def _on_register_write(self, client: Client, userdata: object, sock: object) -> None:
        fd = sock.fileno()
        if fd in self._clients:
            self._epoll.modify(fd, EPOLLIN | EPOLLOUT)

    def _on_unregister_write(self, client: Client, userdata: object, sock: object) -> None:
        fd = sock.fileno()
        if fd in self._clients:
            self._epoll.modify(fd, EPOLLIN)

    def _run(self) -> None:
        next_misc = time.monotonic() + MISC_INTERVAL
        while True:
            try:
                wait_read(self._epoll.fileno(), timeout=MISC_INTERVAL)
            except TimeoutError:
                pass
            self._dispatch(self._epoll.poll(0))

            now = time.monotonic()
            if now >= next_misc:
                next_misc = now + MISC_INTERVAL
                for client in list(self._clients.values()):
                    client.loop_misc()
            # Let user greenlets run between batches even under a steady stream of events.
            gevent.sleep(0)

    def _dispatch(self, events: list[tuple[int, int]]) -> None:
        for fd, mask in events:
            client = self._clients.get(fd)
            if client is None:
                continue
            if mask & (EPOLLIN | EPOLLERR | EPOLLHUP):
                client.loop_read()
            # A read may have closed the socket, so look the client up again.
            if mask & EPOLLOUT and self._clients.get(fd) is client:
                client.loop_write()
