"""The steps of a graph: sources, filters, decoders, controllers, simulators and sinks.

Every node is plain Python (see ``pipeline.node``) and knows nothing about Ray.
"""
