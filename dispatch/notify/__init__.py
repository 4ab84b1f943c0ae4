"""dispatch/notify"""
