"""Therapies as data: CAR-T products, anti-CD20 antibodies, doses, lymphodepletion regimens."""

from cartsim.therapy.antibodies import Antibody, antibodies
from cartsim.therapy.dose import CellDose
from cartsim.therapy.products import CarTProduct, LymphodepletionRegimen, lymphodepletion_regimens, products
from cartsim.therapy.regimen import Regimen

__all__ = ["Antibody", "CarTProduct", "CellDose", "LymphodepletionRegimen", "Regimen", "antibodies",
           "lymphodepletion_regimens", "products"]
