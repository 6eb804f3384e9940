"""The edge–cloud plane: codec, messages, websocket gateway and edge agent."""
