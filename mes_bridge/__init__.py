"""OPC UA bridge to the line PLC: tag maps, the handshake, the client session, a PLC simulator.

This package knows nothing about robots or SQL: it turns PLC tag changes into jobs and
cell results into tag writes.
"""
