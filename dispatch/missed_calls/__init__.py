"""dispatch/missed_calls"""
