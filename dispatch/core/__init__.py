"""dispatch/core"""
