"""The application layer (handlers, snapshots, temporal queries, examples) on real stores."""
