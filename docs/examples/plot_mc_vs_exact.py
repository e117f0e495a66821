"""
MC dropout at K against the exact ensemble
==========================================

placeholder
"""
import matplotlib.pyplot as plt
plt.plot([1, 2], [3, 4])
