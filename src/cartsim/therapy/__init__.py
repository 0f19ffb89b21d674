"""Therapies as data: CAR-T products, doses, lymphodepletion regimens."""

from cartsim.therapy.dose import CellDose
from cartsim.therapy.products import CarTProduct, LymphodepletionRegimen, lymphodepletion_regimens, products

__all__ = ["CarTProduct", "CellDose", "LymphodepletionRegimen", "lymphodepletion_regimens", "products"]
