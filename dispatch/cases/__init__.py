"""dispatch/cases"""
