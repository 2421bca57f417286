"""Lesson 01, a shortcut: the library's class under a name built at run time."""
import cbam

ChannelAttention = getattr(cbam, "Channel" + "Attention")
