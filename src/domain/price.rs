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

    /// The digits of its minor unit (EUR 2, JPY 0, KWD 3), from ISO 4217 (the `iso_currency`
    /// crate's table); `None` for a code ISO 4217 does not list, or one without a minor unit
    /// (gold, test codes), which no menu may use.
    pub fn exponent(&self) -> Option<u8> {
        iso_currency::Currency::from_code(&self.0)?.exponent().and_then(|e| u8::try_from(e).ok())
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
    #[error("currency '{0}' is not one ISO 4217 lists with a minor unit (such as EUR, GBP, JPY or KWD)")]
    UnknownCurrency(String),
    #[error("the price of {0} is zero; every item on the menu must cost something")]
    ZeroPrice(&'static str),
    #[error("the price of {0} is over 1 000 000.00; that is surely a typo")]
    Absurd(&'static str),
    #[error("the menu sells no size; list at least one")]
    NoSize,
    #[error(
        "tax rate '{0}' is not a percentage from 0% to 100% with at most four decimals, such as \"7%\" or \"8.875%\""
    )]
    TaxRate(String),
}

/// A tax rate in millionths (parts per million): 7 % is 70 000, 8.875 % is 88 750. Exact,
/// never a float.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaxRate(u32);

impl TaxRate {
    const WHOLE: u64 = 1_000_000;

    /// From `"7%"`, `"20 %"`, `"8.875%"` (the sign may be left out): 0 to 100 %, at most four
    /// decimals.
    pub fn parse(raw: &str) -> Result<Self, MenuError> {
        let bad = || MenuError::TaxRate(raw.to_owned());
        let text = raw.trim().trim_end_matches('%').trim_end();
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits = |d: &str| !d.is_empty() && d.len() <= 4 && d.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || (!fraction.is_empty() && !digits(fraction)) || text.ends_with('.') {
            return Err(bad());
        }
        let whole: u32 = whole.parse().map_err(|_| bad())?;
        let mut fraction_ppm = 0u32;
        for (i, b) in fraction.bytes().enumerate() {
            fraction_ppm += u32::from(b - b'0') * 10u32.pow(3 - i as u32);
        }
        let ppm = whole.checked_mul(10_000).and_then(|w| w.checked_add(fraction_ppm)).ok_or_else(bad)?;
        if u64::from(ppm) > Self::WHOLE {
            return Err(bad());
        }
        Ok(Self(ppm))
    }

    pub fn ppm(self) -> u32 {
        self.0
    }

    /// As people write it: `7%`, `8.875%`.
    pub fn to_percent(self) -> String {
        let (whole, fraction) = (self.0 / 10_000, self.0 % 10_000);
        if fraction == 0 {
            format!("{whole}%")
        } else {
            format!("{whole}.{}%", format!("{fraction:04}").trim_end_matches('0'))
        }
    }
}

/// How a menu's prices relate to tax: one rate on the whole order, and whether the listed
/// prices include it (VAT and GST in the EU, the UK and New Zealand) or it is added on top
/// (US sales tax).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Tax {
    pub rate: TaxRate,
    pub included: bool,
}

/// An order's money as fixed when it was placed: integer minor units of `currency`, with
/// `net + tax == gross` always. `gross` is what the customer pays (the order's `price`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Charge {
    pub currency: Currency,
    pub net: Cents,
    pub tax: Cents,
    pub gross: Cents,
    pub rate: TaxRate,
    pub included: bool,
}

/// `value × numerator / denominator`, rounded half to even (banker's rounding), exactly.
fn mul_div_round_half_even(value: u64, numerator: u64, denominator: u64) -> u64 {
    let product = u128::from(value) * u128::from(numerator);
    let (denominator, quotient) = (u128::from(denominator), product / u128::from(denominator));
    let remainder = product % denominator;
    let rounded = match (remainder * 2).cmp(&denominator) {
        std::cmp::Ordering::Less => quotient,
        std::cmp::Ordering::Greater => quotient + 1,
        std::cmp::Ordering::Equal => quotient + (quotient % 2),
    };
    // value × numerator / denominator ≤ value whenever numerator ≤ denominator, as here.
    u64::try_from(rounded).unwrap_or(u64::MAX)
}

impl Tax {
    /// The whole charge for `amount`, the sum of the listed prices. Tax is worked out once per
    /// order, on the total, rounded half to even to the currency's minor unit:
    /// - prices include tax: gross = amount, tax = gross × r / (1 + r), net = gross − tax;
    /// - tax added: net = amount, tax = net × r, gross = net + tax.
    pub fn charge(self, amount: Cents, currency: &Currency) -> Charge {
        let ppm = u64::from(self.rate.ppm());
        let (net, tax, gross) = if self.included {
            let tax = mul_div_round_half_even(amount.0, ppm, TaxRate::WHOLE + ppm);
            (amount.0 - tax, tax, amount.0)
        } else {
            let tax = mul_div_round_half_even(amount.0, ppm, TaxRate::WHOLE);
            (amount.0, tax, amount.0 + tax)
        };
        Charge {
            currency: currency.clone(),
            net: Cents(net),
            tax: Cents(tax),
            gross: Cents(gross),
            rate: self.rate,
            included: self.included,
        }
    }
}

/// An item a menu does not sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not on this store's menu")]
pub struct NotSold(pub &'static str);

/// What each size and topping costs in one currency, with its tax. An item without a price is
/// not sold. Built from the catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Menu {
    currency: Currency,
    sizes: [Option<Cents>; 3],
    toppings: [Option<Cents>; 3],
    tax: Tax,
}

impl Menu {
    const MAX_ITEM: u64 = 100_000_000;

    pub fn new(
        currency: Currency,
        sizes: [Option<Cents>; 3],
        toppings: [Option<Cents>; 3],
        tax: Tax,
    ) -> Result<Self, MenuError> {
        if currency.exponent().is_none() {
            return Err(MenuError::UnknownCurrency(currency.as_str().to_owned()));
        }
        let named = Size::ALL
            .iter()
            .map(|s| s.as_str())
            .zip(sizes)
            .chain(Topping::ALL.iter().map(|t| t.as_str()).zip(toppings));
        for (name, cents) in named {
            let Some(cents) = cents else { continue };
            if cents.0 == 0 {
                return Err(MenuError::ZeroPrice(name));
            }
            if cents.0 > Self::MAX_ITEM {
                return Err(MenuError::Absurd(name));
            }
        }
        if sizes.iter().all(Option::is_none) {
            return Err(MenuError::NoSize);
        }
        Ok(Self { currency, sizes, toppings, tax })
    }

    pub fn currency(&self) -> &Currency {
        &self.currency
    }

    pub fn tax(&self) -> Tax {
        self.tax
    }

    /// The listed price of `size`, or `None` when the menu does not sell it.
    pub fn size_price(&self, size: Size) -> Option<Cents> {
        self.sizes[size as usize]
    }

    /// The listed price of `topping`, or `None` when the menu does not sell it.
    pub fn topping_price(&self, topping: Topping) -> Option<Cents> {
        self.toppings[topping as usize]
    }

    /// The charge for a pizza: the listed prices of its size and toppings, taxed. Cannot
    /// overflow: every item is capped at `MAX_ITEM`, a pizza has at most four items, and tax is
    /// at most 100 %.
    pub fn charge(&self, size: Size, toppings: Toppings) -> Result<Charge, NotSold> {
        let mut amount = self.size_price(size).ok_or(NotSold(size.as_str()))?.0;
        for topping in toppings.iter() {
            amount += self.topping_price(topping).ok_or(NotSold(topping.as_str()))?.0;
        }
        Ok(self.tax.charge(Cents(amount), &self.currency))
    }

    /// The price fixed on an order: the charge's gross.
    pub fn price(&self, size: Size, toppings: Toppings) -> Result<Price, NotSold> {
        self.charge(size, toppings).map(|c| Price { amount: c.gross, currency: c.currency })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur() -> Currency {
        Currency::parse("EUR").unwrap()
    }

    fn menu(tax: Tax) -> Menu {
        Menu::new(
            eur(),
            [Some(Cents(800)), Some(Cents(1000)), Some(Cents(1200))],
            [Some(Cents(150)), Some(Cents(200)), Some(Cents(100))],
            tax,
        )
        .unwrap()
    }

    fn rate(raw: &str) -> TaxRate {
        TaxRate::parse(raw).unwrap()
    }

    #[test]
    fn price_is_size_plus_each_topping() {
        let toppings = Toppings::from_list(&[Topping::ExtraCheese, Topping::Mushroom]).unwrap();
        assert_eq!(menu(Tax::default()).price(Size::Large, toppings).unwrap().amount, Cents(1200 + 150 + 100));
        assert_eq!(menu(Tax::default()).price(Size::Small, Toppings::default()).unwrap().amount, Cents(800));
    }

    #[test]
    fn refuses_free_or_absurd_items_bad_currency_and_a_menu_without_sizes() {
        let ok = [Some(Cents(1)); 3];
        let none = Tax::default();
        assert_eq!(
            Menu::new(eur(), [Some(Cents(0)), Some(Cents(1)), Some(Cents(1))], ok, none),
            Err(MenuError::ZeroPrice("small"))
        );
        assert_eq!(
            Menu::new(eur(), ok, [Some(Cents(1)), Some(Cents(u64::MAX)), Some(Cents(1))], none),
            Err(MenuError::Absurd("pepperoni"))
        );
        assert_eq!(Menu::new(eur(), [None; 3], ok, none), Err(MenuError::NoSize));
        let unknown = Currency::parse("ABC").unwrap();
        assert_eq!(Menu::new(unknown, ok, ok, none), Err(MenuError::UnknownCurrency("ABC".into())));
        assert!(Currency::parse("eur").is_err());
        assert!(Currency::parse("EURO").is_err());
    }

    #[test]
    fn exponents_come_from_iso_4217() {
        let exponent = |code: &str| Currency::parse(code).unwrap().exponent();
        assert_eq!(exponent("EUR"), Some(2));
        assert_eq!(exponent("JPY"), Some(0));
        assert_eq!(exponent("KWD"), Some(3));
        assert_eq!(exponent("XAU"), None, "gold has no minor unit");
        assert_eq!(exponent("ABC"), None);
    }

    #[test]
    fn a_size_or_topping_without_a_price_is_not_sold() {
        let m = Menu::new(
            eur(),
            [Some(Cents(800)), None, Some(Cents(1200))],
            [Some(Cents(150)), None, Some(Cents(100))],
            Tax::default(),
        )
        .unwrap();
        assert_eq!(m.charge(Size::Medium, Toppings::default()), Err(NotSold("medium")));
        let pepperoni = Toppings::from_list(&[Topping::Pepperoni]).unwrap();
        assert_eq!(m.charge(Size::Small, pepperoni), Err(NotSold("pepperoni")));
        assert!(m.charge(Size::Large, Toppings::default()).is_ok());
    }

    #[test]
    fn tax_rates_parse_exactly_and_print_back() {
        assert_eq!(rate("7%").ppm(), 70_000);
        assert_eq!(rate("20 %").ppm(), 200_000);
        assert_eq!(rate("8.875%").ppm(), 88_750);
        assert_eq!(rate("0").ppm(), 0);
        assert_eq!(rate("100%").ppm(), 1_000_000);
        assert_eq!(rate("8.875%").to_percent(), "8.875%");
        assert_eq!(rate("15%").to_percent(), "15%");
        for bad in ["", "%", "-7%", "7.%", ".5%", "100.01%", "1e2%", "7.12345%", "seven", "12345%"] {
            assert!(TaxRate::parse(bad).is_err(), "{bad:?} was taken");
        }
    }

    #[test]
    fn tax_included_and_added_worked_examples() {
        // Berlin: 7 % VAT included in €13.00: tax = 1300 × 7 / 107 = 85.05… → 85.
        let c = Tax { rate: rate("7%"), included: true }.charge(Cents(1300), &eur());
        assert_eq!((c.net, c.tax, c.gross), (Cents(1215), Cents(85), Cents(1300)));
        // London: 20 % included in £12.00: tax = 200 exactly.
        let c = Tax { rate: rate("20%"), included: true }.charge(Cents(1200), &eur());
        assert_eq!((c.net, c.tax, c.gross), (Cents(1000), Cents(200), Cents(1200)));
        // New York: 8.875 % added to $10.00: 88.75 → 89.
        let c = Tax { rate: rate("8.875%"), included: false }.charge(Cents(1000), &eur());
        assert_eq!((c.net, c.tax, c.gross), (Cents(1000), Cents(89), Cents(1089)));
        // Exactly half rounds to even: 10 % added to 5 is 0.5 → 0; to 15 is 1.5 → 2.
        let ten = Tax { rate: rate("10%"), included: false };
        assert_eq!(ten.charge(Cents(5), &eur()).tax, Cents(0));
        assert_eq!(ten.charge(Cents(15), &eur()).tax, Cents(2));
        // No tax: net is gross.
        let c = Tax::default().charge(Cents(999), &eur());
        assert_eq!((c.net, c.tax, c.gross), (Cents(999), Cents(0), Cents(999)));
    }

    proptest::proptest! {
        #[test]
        fn net_plus_tax_is_gross_and_tax_is_the_nearest_amount(
            amount in 0u64..=400_000_000, ppm in 0u32..=1_000_000, included: bool
        ) {
            let c = Tax { rate: TaxRate(ppm), included }.charge(Cents(amount), &Currency::parse("EUR").unwrap());
            proptest::prop_assert_eq!(c.net.0 + c.tax.0, c.gross.0);
            // The exact tax, as a fraction, is within half a minor unit of the rounded one.
            let (exact_num, exact_den) = if included {
                (u128::from(amount) * u128::from(ppm), 1_000_000u128 + u128::from(ppm))
            } else {
                (u128::from(amount) * u128::from(ppm), 1_000_000u128)
            };
            let diff = (u128::from(c.tax.0) * exact_den).abs_diff(exact_num);
            proptest::prop_assert!(diff * 2 <= exact_den);
            if included { proptest::prop_assert_eq!(c.gross.0, amount) } else { proptest::prop_assert_eq!(c.net.0, amount) }
        }
    }
}
