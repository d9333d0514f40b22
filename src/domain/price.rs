use serde::{Deserialize, Serialize};

use super::{Size, Topping, Toppings};

/// An amount of money in the currency's smallest unit (cents). Never a float.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Cents(pub u64);

/// An ISO 4217 code: three upper-case ASCII letters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(String);

impl Currency {
    pub fn parse(raw: &str) -> Result<Self, MenuError> {
        if raw.len() == 3 && raw.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(MenuError::Currency(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Currency {
    type Error = MenuError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> Self {
        c.0
    }
}

/// A price as fixed on an order: billing reads it later, so it never changes with the menu.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Price {
    pub amount: Cents,
    pub currency: Currency,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MenuError {
    #[error("currency '{0}' is not a three-letter ISO 4217 code such as EUR")]
    Currency(String),
    #[error("the price of {0} is zero; every item on the menu must cost something")]
    ZeroPrice(&'static str),
    #[error("the price of {0} is over 1 000 000.00; that is surely a typo")]
    Absurd(&'static str),
}

/// What each size and topping costs. Built once from configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Menu {
    currency: Currency,
    sizes: [Cents; 3],
    toppings: [Cents; 3],
}

impl Menu {
    const MAX_ITEM: u64 = 100_000_000;

    pub fn new(currency: Currency, sizes: [Cents; 3], toppings: [Cents; 3]) -> Result<Self, MenuError> {
        let named = Size::ALL
            .iter()
            .map(|s| s.as_str())
            .zip(sizes)
            .chain(Topping::ALL.iter().map(|t| t.as_str()).zip(toppings));
        for (name, cents) in named {
            if cents.0 == 0 {
                return Err(MenuError::ZeroPrice(name));
            }
            if cents.0 > Self::MAX_ITEM {
                return Err(MenuError::Absurd(name));
            }
        }
        Ok(Self { currency, sizes, toppings })
    }

    pub fn currency(&self) -> &Currency {
        &self.currency
    }

    pub fn size_price(&self, size: Size) -> Cents {
        self.sizes[size as usize]
    }

    pub fn topping_price(&self, topping: Topping) -> Cents {
        self.toppings[topping as usize]
    }

    /// Cannot overflow: every item is capped at `MAX_ITEM` and a pizza has at most four items.
    pub fn price(&self, size: Size, toppings: Toppings) -> Price {
        let extras: u64 = toppings.iter().map(|t| self.topping_price(t).0).sum();
        Price { amount: Cents(self.size_price(size).0 + extras), currency: self.currency.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn menu() -> Menu {
        Menu::new(
            Currency::parse("EUR").unwrap(),
            [Cents(800), Cents(1000), Cents(1200)],
            [Cents(150), Cents(200), Cents(100)],
        )
        .unwrap()
    }

    #[test]
    fn price_is_size_plus_each_topping() {
        let toppings = Toppings::from_list(&[Topping::ExtraCheese, Topping::Mushroom]).unwrap();
        assert_eq!(menu().price(Size::Large, toppings).amount, Cents(1200 + 150 + 100));
        assert_eq!(menu().price(Size::Small, Toppings::default()).amount, Cents(800));
    }

    #[test]
    fn refuses_free_or_absurd_items_and_bad_currency() {
        let eur = Currency::parse("EUR").unwrap();
        let ok = [Cents(1); 3];
        assert_eq!(Menu::new(eur.clone(), [Cents(0), Cents(1), Cents(1)], ok), Err(MenuError::ZeroPrice("small")));
        assert_eq!(Menu::new(eur, ok, [Cents(1), Cents(u64::MAX), Cents(1)]), Err(MenuError::Absurd("pepperoni")));
        assert!(Currency::parse("eur").is_err());
        assert!(Currency::parse("EURO").is_err());
    }
}
