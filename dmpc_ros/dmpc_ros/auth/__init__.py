"""Message authentication for a team of agents where the middleware has no DDS Security (sans-IO: no rclpy).

`mac`: HMAC-SHA256 over a message's serialized bytes; `keystore`: the team's keys in a folder (`dmpc keys create`);
`verifier`: who may send what (a key belongs to one agent), replay refusal and the refusal counts. The ROS layer
(ros/authentication.py) serializes messages and calls these; nothing here knows a message type.
"""
from .keystore import KEY_SIZE, Keystore, KeystoreError, TeamKey, create_keystore, load_keystore, owner_name
from .mac import MAC_SIZE, message_mac
from .verifier import REASONS, NonceCounter, Signer, Verifier

__all__ = ["KEY_SIZE", "Keystore", "KeystoreError", "MAC_SIZE", "NonceCounter", "REASONS", "Signer", "TeamKey",
           "Verifier", "create_keystore", "load_keystore", "message_mac", "owner_name"]
