"""The storage floor: the ClickHouse seam (server and chDB), the migrations runner, and the
span, metric and edge model in both directions, with every SQL statement that writes or
reads it. Collector, dashboard and the roof call its functions; it imports no component."""
