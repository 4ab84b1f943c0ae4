"""dispatch/intake"""
