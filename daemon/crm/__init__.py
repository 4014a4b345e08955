"""The CRM side of processing: objects of the runtime configuration's limetypes.

``mapping``   message properties and a conversation parent's property mapping
``followers`` followers and message followers, linked to follower parents
``identify``  which conversation a message belongs to
``importer``  the one transaction that turns a classified message into objects
``replies``   when an import should send mail (automatic replies, notifications)
``bounces``   a bounce becomes an error record on the message follower it hit
``errors``    the one writer of error records and of ``follower.failing``
``schema``    the lookups the importer makes, indexed up front
``seed``      seed objects from a JSON file
"""
