"""Témoin as a content destination of the Axis Body Worn system (docs/axis.md).

The Axis system controller hands every recording over a small subset of the OpenStack Swift object-store
protocol, described by Axis's "Body worn integration API". This package is that destination: the connection
file and its credential (connection), the Swift semantics (store), and the hand-over into the vault (vault).
"""
