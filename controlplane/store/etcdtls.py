"""An aetcd client that talks TLS with a client certificate (etcd's
--client-cert-auth), for secure mode (decision 32).

aetcd 1.0 opens only plaintext channels (`rpc.insecure_channel` inside
`Client.connect`), so `connect` is restated here with a TLS channel; everything
else (stubs, watcher, error mapping) is aetcd's own. Username/password auth is
not used by Skiff and is left out.
"""
from __future__ import annotations

import asyncio

import aetcd
import grpc
from aetcd import rpc, watcher
from aetcd.client import _handle_errors

from skiff.pki import Credentials


class TlsClient(aetcd.Client):
    def __init__(self, *, credentials: Credentials, **kwargs) -> None:
        super().__init__(**kwargs)
        self._tls = grpc.ssl_channel_credentials(root_certificates=credentials.ca, private_key=credentials.key,
                                                 certificate_chain=credentials.cert)

    @_handle_errors
    async def connect(self) -> None:
        if self._connected.is_set():
            return
        if self._is_connecting:   # another task is connecting: wait for it
            await asyncio.wait_for(self._connected.wait(), self._connect_wait_timeout)
            return
        try:
            self._is_connecting = True
            self.channel = grpc.aio.secure_channel(f"{self._host}:{self._port}", self._tls,
                                                   options=self._options.items())
            self.kvstub = rpc.KVStub(self.channel)
            self.clusterstub = rpc.ClusterStub(self.channel)
            self.leasestub = rpc.LeaseStub(self.channel)
            self.maintenancestub = rpc.MaintenanceStub(self.channel)
            self._watcher = watcher.Watcher(rpc.WatchStub(self.channel), timeout=self._timeout,
                                            metadata=self.metadata)
            self._connected.set()
        finally:
            self._is_connecting = False
