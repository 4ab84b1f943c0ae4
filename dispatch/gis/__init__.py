"""dispatch/gis"""
