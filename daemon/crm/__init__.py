"""The CRM side of processing: objects of the runtime configuration's limetypes.

``mapping``   message properties and a conversation parent's property mapping
``followers`` followers and message followers, linked to follower parents
``identify``  which conversation a message belongs to
``importer``  the one transaction that turns a classified message into objects
"""
