"""dispatch/elderly"""
