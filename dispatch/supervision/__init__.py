"""dispatch/supervision"""
