"""gateway/views"""
