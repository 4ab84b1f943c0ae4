"""dispatch/linking"""
