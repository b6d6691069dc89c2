"""What every long-running role process shares, beside storage: leadership over ZooKeeper
(with fencing) and TLS key pairs that reload in place. It imports no component."""
