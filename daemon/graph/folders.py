"""Folder names to Graph folder ids, for the monitored folder and the failure folder.

Accounts name folders as people see them (``INBOX``, ``postroom-failed``); Graph wants ids.
``INBOX`` (any case) and Graph's well-known names map to themselves (``inbox`` is a valid
id in every locale, which avoids EmailEngine #465, where a localized Inbox name stopped
webhooks); other names are looked up among the top-level folders by display name, and the
failure folder is created when missing. Ids are cached for the client's lifetime.
"""

from __future__ import annotations

__all__ = ["FolderIds"]

from daemon.errors import PermanentError
from daemon.graph.client import GraphClient, GraphRequestError

WELL_KNOWN = frozenset({"inbox", "archive", "drafts", "sentitems", "deleteditems",
                        "junkemail", "outbox"})


class FolderIds:
    """Resolves (and creates) folders of one mailbox; see the module docstring."""

    def __init__(self, client: GraphClient) -> None:
        self.client = client
        self._ids: dict[str, str] = {}

    async def resolve(self, name: str) -> str:
        """The id of folder ``name``. A checkpoint; PermanentError when it does not exist."""
        found = await self._lookup(name)
        if found is None:
            raise PermanentError(f"Graph folder {name!r} does not exist",
                                 account=self.client.account)
        return found

    async def ensure(self, name: str) -> str:
        """The id of folder ``name``, created when missing. A checkpoint."""
        found = await self._lookup(name)
        if found is not None:
            return found
        try:
            body = await self.client.json("POST", self.client.user_url("/mailFolders"),
                                          json={"displayName": name})
        except GraphRequestError as exc:
            if exc.status != 409:  # 409: created meanwhile by someone else
                raise
            return await self.resolve(name)
        folder_id = str(body["id"])
        self._ids[name] = folder_id
        return folder_id

    async def _lookup(self, name: str) -> str | None:
        if name.lower() in WELL_KNOWN:
            return name.lower()
        if name in self._ids:
            return self._ids[name]
        quoted = name.replace("'", "''")
        body = await self.client.json("GET", self.client.user_url("/mailFolders"),
                                      params={"$filter": f"displayName eq '{quoted}'"})
        for folder in body.get("value", []):
            if folder.get("displayName", "").lower() == name.lower():
                folder_id = str(folder["id"])
                self._ids[name] = folder_id
                return folder_id
        return None
