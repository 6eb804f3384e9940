"""The edge-cloud plane: codec, protocol messages, auth, the gateway, the edge link, its spool,
and a network emulator for tests. Imports only robot_rl.core and third-party libraries."""
