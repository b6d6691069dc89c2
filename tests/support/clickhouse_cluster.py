"""Cluster mode for real, as a module-scoped fixture (registered in tests/conftest.py):
ZooKeeper and two clickhouse-server shards of the cluster ``sidetrace``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.clickhouse_server import ClickHouseServer
from tests.support.zookeeper import ZooKeeper, zookeeper_classpath

CLUSTER = "sidetrace"
# The profile setting the cluster overlay gives ClickHouse (see clickhouse-config.yaml).
CLUSTER_PROFILE = """<?xml version="1.0"?>
<yandex><profiles><default>
  <distributed_product_mode>local</distributed_product_mode>
</default></profiles></yandex>
"""


def shard_config(servers: list[ClickHouseServer], zk_port: int, shard: int) -> str:
    shards = "".join(
        "<shard><internal_replication>true</internal_replication>"  # as deploy/overlays/cluster
        f"<replica><host>127.0.0.1</host><port>{s.tcp_port}</port></replica></shard>"
        for s in servers
    )
    return f"""
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <remote_servers><{CLUSTER}>{shards}</{CLUSTER}></remote_servers>
  <zookeeper><node><host>127.0.0.1</host><port>{zk_port}</port></node></zookeeper>
  <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
  <macros><shard>{shard:02d}</shard><replica>r1</replica></macros>
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ClickHouseServer]]:
    """Two clickhouse-server shards and a ZooKeeper, as deploy/overlays/cluster sets them up."""
    if zookeeper_classpath() is None:
        pytest.skip("ZooKeeper (Debian package zookeeper) and java are needed")
    folder = tmp_path_factory.mktemp("cluster")
    servers: list[ClickHouseServer] = []
    with ZooKeeper(folder / "zk", tick_ms=2000) as zookeeper:
        try:
            servers = [ClickHouseServer(root=folder / f"shard{i}") for i in (1, 2)]
            for shard, server in enumerate(servers, start=1):
                server.extra_config = shard_config(servers, zookeeper.port, shard)
                server._write_config()  # the ports of both shards are known only now
                (server.root / "users.d").mkdir()
                (server.root / "users.d" / "cluster.xml").write_text(CLUSTER_PROFILE)
            for server in servers:
                server.start()
            yield servers
        finally:
            for server in servers:
                server.remove()
