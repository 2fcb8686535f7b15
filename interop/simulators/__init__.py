"""Local simulators of the archival platforms (Vitam, As@lae), written from their published protocols.

They let tests, and municipalities rehearsing their set-up, talk to something that answers like the platform,
including its failures (see :class:`interop.simulators.common.Scenario`). Never for production data.
"""
