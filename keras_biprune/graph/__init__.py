"""Tracing a Keras model into channel groups."""

from keras_biprune.graph.channel_graph import ChannelGraph, ChannelGroup, GroupMember, trace

__all__ = ["ChannelGraph", "ChannelGroup", "GroupMember", "trace"]
