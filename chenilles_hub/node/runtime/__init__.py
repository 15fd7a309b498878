"""The node process: turning a config into parts (``bootstrap``), the asyncio server that
drives a :class:`~chenilles_hub.node.hub.Node` through one work queue with group commits
(``server``, ``work``), and logging (``logs``)."""
