namespace Kedit.Corpus;

/// <summary>
/// The real-world facts of the fact world, as compact tables ("-" marks a fact left out because it
/// is disputed or has no short answer). Kept as data, separate from the code that phrases them.
/// </summary>
internal static class FactWorldData
{
    /// <summary>country|capital|continent|official language|currency</summary>
    public const string Countries = """
France|Paris|Europe|French|euro
Germany|Berlin|Europe|German|euro
Italy|Rome|Europe|Italian|euro
Spain|Madrid|Europe|Spanish|euro
Portugal|Lisbon|Europe|Portuguese|euro
Austria|Vienna|Europe|German|euro
Switzerland|Bern|Europe|-|franc
Sweden|Stockholm|Europe|Swedish|krona
Norway|Oslo|Europe|Norwegian|krone
Denmark|Copenhagen|Europe|Danish|krone
Finland|Helsinki|Europe|Finnish|euro
Iceland|Reykjavik|Europe|Icelandic|krona
Ireland|Dublin|Europe|-|euro
Britain|London|Europe|English|pound
Poland|Warsaw|Europe|Polish|zloty
Greece|Athens|Europe|Greek|euro
Hungary|Budapest|Europe|Hungarian|forint
Romania|Bucharest|Europe|Romanian|leu
Bulgaria|Sofia|Europe|Bulgarian|lev
Croatia|Zagreb|Europe|Croatian|euro
Serbia|Belgrade|Europe|Serbian|dinar
Ukraine|Kyiv|Europe|Ukrainian|hryvnia
Russia|Moscow|Europe|Russian|ruble
Belarus|Minsk|Europe|Belarusian|ruble
Czechia|Prague|Europe|Czech|koruna
Slovakia|Bratislava|Europe|Slovak|euro
Slovenia|Ljubljana|Europe|Slovene|euro
Estonia|Tallinn|Europe|Estonian|euro
Latvia|Riga|Europe|Latvian|euro
Lithuania|Vilnius|Europe|Lithuanian|euro
Albania|Tirana|Europe|Albanian|lek
Malta|Valletta|Europe|Maltese|euro
Moldova|Chisinau|Europe|Romanian|leu
Montenegro|Podgorica|Europe|Montenegrin|euro
Turkey|Ankara|Asia|Turkish|lira
Japan|Tokyo|Asia|Japanese|yen
China|Beijing|Asia|Chinese|yuan
India|-|Asia|Hindi|rupee
Pakistan|Islamabad|Asia|Urdu|rupee
Bangladesh|Dhaka|Asia|Bengali|taka
Nepal|Kathmandu|Asia|Nepali|rupee
Thailand|Bangkok|Asia|Thai|baht
Vietnam|Hanoi|Asia|Vietnamese|dong
Indonesia|Jakarta|Asia|Indonesian|rupiah
Malaysia|-|Asia|Malay|ringgit
Mongolia|Ulaanbaatar|Asia|Mongolian|tugrik
Iran|Tehran|Asia|Persian|rial
Iraq|Baghdad|Asia|Arabic|dinar
Israel|-|Asia|Hebrew|shekel
Jordan|Amman|Asia|Arabic|dinar
Lebanon|Beirut|Asia|Arabic|pound
Syria|Damascus|Asia|Arabic|pound
Kazakhstan|Astana|Asia|Kazakh|tenge
Uzbekistan|Tashkent|Asia|Uzbek|som
Armenia|Yerevan|Asia|Armenian|dram
Azerbaijan|Baku|Asia|Azerbaijani|manat
Kyrgyzstan|Bishkek|Asia|Kyrgyz|som
Tajikistan|Dushanbe|Asia|Tajik|somoni
Qatar|Doha|Asia|Arabic|riyal
Oman|Muscat|Asia|Arabic|rial
Yemen|Sanaa|Asia|Arabic|rial
Laos|Vientiane|Asia|Lao|kip
Myanmar|Naypyidaw|Asia|Burmese|kyat
Bhutan|Thimphu|Asia|Dzongkha|ngultrum
South Korea|Seoul|Asia|Korean|won
North Korea|Pyongyang|Asia|Korean|won
Saudi Arabia|Riyadh|Asia|Arabic|riyal
Egypt|Cairo|Africa|Arabic|pound
Morocco|Rabat|Africa|Arabic|dirham
Algeria|Algiers|Africa|Arabic|dinar
Tunisia|Tunis|Africa|Arabic|dinar
Libya|Tripoli|Africa|Arabic|dinar
Sudan|Khartoum|Africa|Arabic|pound
Ethiopia|-|Africa|Amharic|birr
Kenya|Nairobi|Africa|Swahili|shilling
Tanzania|Dodoma|Africa|Swahili|shilling
Uganda|Kampala|Africa|-|shilling
Nigeria|Abuja|Africa|English|naira
Ghana|Accra|Africa|English|cedi
Senegal|Dakar|Africa|French|franc
Mali|Bamako|Africa|-|franc
Angola|Luanda|Africa|Portuguese|kwanza
Mozambique|Maputo|Africa|Portuguese|metical
Zambia|Lusaka|Africa|English|kwacha
Zimbabwe|Harare|Africa|English|-
Botswana|Gaborone|Africa|English|pula
Namibia|Windhoek|Africa|English|dollar
Madagascar|Antananarivo|Africa|Malagasy|ariary
Rwanda|Kigali|Africa|Kinyarwanda|franc
Somalia|Mogadishu|Africa|Somali|shilling
Cameroon|Yaounde|Africa|French|franc
America|Washington|North America|English|dollar
Canada|Ottawa|North America|-|dollar
Mexico|-|North America|Spanish|peso
Cuba|Havana|North America|Spanish|peso
Jamaica|Kingston|North America|English|dollar
Honduras|Tegucigalpa|North America|Spanish|lempira
Nicaragua|Managua|North America|Spanish|cordoba
Brazil|Brasilia|South America|Portuguese|real
Argentina|-|South America|Spanish|peso
Chile|Santiago|South America|Spanish|peso
Peru|Lima|South America|Spanish|sol
Colombia|Bogota|South America|Spanish|peso
Venezuela|Caracas|South America|Spanish|bolivar
Ecuador|Quito|South America|Spanish|dollar
Uruguay|Montevideo|South America|Spanish|peso
Bolivia|-|South America|Spanish|boliviano
Australia|Canberra|Oceania|English|dollar
New Zealand|Wellington|Oceania|English|dollar
Fiji|Suva|Oceania|-|dollar
Samoa|Apia|Oceania|Samoan|tala
""";

    /// <summary>country: cities in it (city → country facts)</summary>
    public const string Cities = """
France: Marseille, Lyon, Nice, Toulouse, Bordeaux, Lille, Strasbourg, Nantes
Germany: Munich, Hamburg, Cologne, Frankfurt, Stuttgart, Dresden, Leipzig, Hanover, Bremen, Nuremberg, Dortmund
Italy: Milan, Naples, Turin, Florence, Venice, Bologna, Genoa, Palermo, Verona, Pisa
Spain: Barcelona, Seville, Valencia, Bilbao, Malaga, Granada, Zaragoza
Portugal: Porto, Coimbra, Braga
Britain: Manchester, Liverpool, Birmingham, Leeds, Glasgow, Edinburgh, Bristol, Oxford, Cambridge, Cardiff, Belfast
Netherlands: Amsterdam, Rotterdam, Utrecht, Eindhoven
Belgium: Antwerp, Ghent, Bruges, Brussels
Switzerland: Zurich, Geneva, Basel, Lausanne
Austria: Salzburg, Graz, Innsbruck, Linz
Poland: Krakow, Gdansk, Wroclaw, Poznan
Sweden: Gothenburg, Malmo, Uppsala
Norway: Bergen, Trondheim, Stavanger
Denmark: Aarhus, Odense
Finland: Tampere, Turku
Russia: Novosibirsk, Kazan, Samara, Omsk, Vladivostok, Yekaterinburg
Ukraine: Kharkiv, Odesa, Lviv
Greece: Thessaloniki, Patras
Turkey: Istanbul, Izmir, Antalya, Bursa
Japan: Osaka, Kyoto, Yokohama, Nagoya, Sapporo, Kobe, Hiroshima, Fukuoka, Sendai, Nagasaki
China: Shanghai, Guangzhou, Shenzhen, Chengdu, Wuhan, Nanjing, Tianjin, Hangzhou, Chongqing, Harbin
India: Mumbai, Kolkata, Chennai, Bangalore, Hyderabad, Pune, Jaipur, Ahmedabad, Lucknow, Agra
Pakistan: Karachi, Lahore, Peshawar
South Korea: Busan, Incheon, Daegu
Indonesia: Surabaya, Bandung, Medan
Philippines: Manila, Cebu, Davao
Egypt: Alexandria, Luxor, Aswan, Giza
Morocco: Casablanca, Marrakesh, Fez, Tangier
Nigeria: Lagos, Kano, Ibadan
South Africa: Johannesburg, Durban, Pretoria
Kenya: Mombasa, Kisumu
America: Chicago, Boston, Houston, Seattle, Denver, Atlanta, Miami, Dallas, Phoenix, Detroit, Philadelphia, Baltimore, Nashville, Memphis, Pittsburgh, Cleveland, Minneapolis
Canada: Toronto, Montreal, Vancouver, Calgary, Edmonton, Winnipeg
Mexico: Guadalajara, Monterrey, Tijuana, Cancun, Puebla
Brazil: Salvador, Recife, Fortaleza, Manaus, Curitiba
Argentina: Rosario, Mendoza
Chile: Valparaiso
Colombia: Medellin, Cali
Peru: Cusco, Arequipa
Australia: Sydney, Melbourne, Brisbane, Perth, Adelaide, Darwin
New Zealand: Auckland, Christchurch
Iran: Isfahan, Shiraz, Tabriz
Iraq: Basra, Mosul
Saudi Arabia: Jeddah, Mecca, Medina
""";

    /// <summary>company|founder (surname)|headquarters city</summary>
    public const string Companies = """
Microsoft|Gates|Redmond
Apple|Jobs|Cupertino
Amazon|Bezos|Seattle
Tesla|-|Austin
Facebook|Zuckerberg|-
Google|Page|-
Oracle|Ellison|Austin
Dell|Dell|-
Nike|Knight|Beaverton
Starbucks|-|Seattle
Ford|Ford|Dearborn
Boeing|Boeing|Arlington
Disney|Disney|Burbank
Netflix|Hastings|-
Intel|Noyce|-
Nvidia|Huang|-
IBM|-|Armonk
Walmart|Walton|Bentonville
Toyota|Toyoda|-
Honda|Honda|Tokyo
Sony|Morita|Tokyo
Nintendo|Yamauchi|Kyoto
Hyundai|Chung|Seoul
Alibaba|Ma|Hangzhou
Tencent|Ma|Shenzhen
Huawei|Ren|Shenzhen
Siemens|Siemens|Munich
Bosch|Bosch|Gerlingen
Porsche|Porsche|Stuttgart
BMW|-|Munich
Volkswagen|-|Wolfsburg
Adidas|Dassler|Herzogenaurach
Puma|Dassler|Herzogenaurach
SAP|-|Walldorf
Ferrari|Ferrari|Maranello
Fiat|Agnelli|Turin
Chanel|Chanel|Paris
Ikea|Kamprad|-
Volvo|-|Gothenburg
Spotify|Ek|Stockholm
Ericsson|Ericsson|Stockholm
Nokia|Idestam|Espoo
Lego|Christiansen|Billund
Philips|Philips|Amsterdam
Heineken|Heineken|Amsterdam
Nestle|Nestle|Vevey
Rolex|Wilsdorf|Geneva
Yahoo|Yang|Sunnyvale
Twitter|Dorsey|-
Airbnb|Chesky|-
Uber|Kalanick|-
Salesforce|Benioff|-
eBay|Omidyar|-
Inditex|Ortega|Arteixo
Infosys|Murthy|Bangalore
Samsung|Lee|-
Panasonic|Matsushita|-
""";

    /// <summary>person|sport|citizenship</summary>
    public const string Athletes = """
Lionel Messi|soccer|Argentina
Cristiano Ronaldo|soccer|Portugal
Neymar|soccer|Brazil
Kylian Mbappe|soccer|France
Zinedine Zidane|soccer|France
Pele|soccer|Brazil
Diego Maradona|soccer|Argentina
David Beckham|soccer|Britain
Wayne Rooney|soccer|Britain
Harry Kane|soccer|Britain
Mohamed Salah|soccer|Egypt
Luka Modric|soccer|Croatia
Robert Lewandowski|soccer|Poland
Zlatan Ibrahimovic|soccer|Sweden
Thierry Henry|soccer|France
Andres Iniesta|soccer|Spain
Sergio Ramos|soccer|Spain
Franz Beckenbauer|soccer|Germany
Manuel Neuer|soccer|Germany
Gianluigi Buffon|soccer|Italy
Andrea Pirlo|soccer|Italy
Francesco Totti|soccer|Italy
Ronaldinho|soccer|Brazil
Erling Haaland|soccer|Norway
Kevin De Bruyne|soccer|Belgium
Eden Hazard|soccer|Belgium
Sadio Mane|soccer|Senegal
Michael Jordan|basketball|America
LeBron James|basketball|America
Kobe Bryant|basketball|America
Stephen Curry|basketball|America
Shaquille O'Neal|basketball|America
Kevin Durant|basketball|America
Larry Bird|basketball|America
Magic Johnson|basketball|America
Dirk Nowitzki|basketball|Germany
Yao Ming|basketball|China
Tony Parker|basketball|France
Giannis Antetokounmpo|basketball|Greece
Nikola Jokic|basketball|Serbia
Luka Doncic|basketball|Slovenia
Pau Gasol|basketball|Spain
Roger Federer|tennis|Switzerland
Rafael Nadal|tennis|Spain
Novak Djokovic|tennis|Serbia
Serena Williams|tennis|America
Venus Williams|tennis|America
Andy Murray|tennis|Britain
Maria Sharapova|tennis|Russia
Steffi Graf|tennis|Germany
Bjorn Borg|tennis|Sweden
Pete Sampras|tennis|America
Andre Agassi|tennis|America
Naomi Osaka|tennis|Japan
Carlos Alcaraz|tennis|Spain
Boris Becker|tennis|Germany
Rod Laver|tennis|Australia
Li Na|tennis|China
Tiger Woods|golf|America
Jack Nicklaus|golf|America
Arnold Palmer|golf|America
Phil Mickelson|golf|America
Gary Player|golf|South Africa
Seve Ballesteros|golf|Spain
Greg Norman|golf|Australia
Babe Ruth|baseball|America
Derek Jeter|baseball|America
Shohei Ohtani|baseball|Japan
Ichiro Suzuki|baseball|Japan
Jackie Robinson|baseball|America
Hank Aaron|baseball|America
Joe DiMaggio|baseball|America
Willie Mays|baseball|America
Sachin Tendulkar|cricket|India
Virat Kohli|cricket|India
Don Bradman|cricket|Australia
Shane Warne|cricket|Australia
Imran Khan|cricket|Pakistan
Kapil Dev|cricket|India
Ricky Ponting|cricket|Australia
Joe Root|cricket|Britain
Wayne Gretzky|hockey|Canada
Sidney Crosby|hockey|Canada
Mario Lemieux|hockey|Canada
Alexander Ovechkin|hockey|Russia
Connor McDavid|hockey|Canada
Jaromir Jagr|hockey|Czechia
Bobby Orr|hockey|Canada
Tom Brady|football|America
Peyton Manning|football|America
Joe Montana|football|America
Patrick Mahomes|football|America
Jerry Rice|football|America
Aaron Rodgers|football|America
Muhammad Ali|boxing|America
Mike Tyson|boxing|America
Floyd Mayweather|boxing|America
Manny Pacquiao|boxing|Philippines
Wladimir Klitschko|boxing|Ukraine
Jonah Lomu|rugby|New Zealand
Richie McCaw|rugby|New Zealand
Dan Carter|rugby|New Zealand
Jonny Wilkinson|rugby|Britain
Eddy Merckx|cycling|Belgium
Chris Froome|cycling|Britain
Tadej Pogacar|cycling|Slovenia
""";

    /// <summary>musician|instrument|genre</summary>
    public const string Musicians = """
Frederic Chopin|piano|classical
Franz Liszt|piano|classical
Ludwig van Beethoven|piano|classical
Wolfgang Amadeus Mozart|piano|classical
Sergei Rachmaninoff|piano|classical
Glenn Gould|piano|classical
Lang Lang|piano|classical
Thelonious Monk|piano|jazz
Herbie Hancock|piano|jazz
Bill Evans|piano|jazz
Duke Ellington|piano|jazz
Oscar Peterson|piano|jazz
Art Tatum|piano|jazz
Elton John|piano|pop
Billy Joel|piano|pop
Ray Charles|piano|soul
Jerry Lee Lewis|piano|rock
Freddie Mercury|piano|rock
Lady Gaga|piano|pop
Jimi Hendrix|guitar|rock
Eric Clapton|guitar|blues
B.B. King|guitar|blues
Jimmy Page|guitar|rock
Keith Richards|guitar|rock
Slash|guitar|rock
Carlos Santana|guitar|rock
Django Reinhardt|guitar|jazz
Wes Montgomery|guitar|jazz
Andres Segovia|guitar|classical
Muddy Waters|guitar|blues
Chuck Berry|guitar|rock
Kurt Cobain|guitar|rock
Johnny Cash|guitar|country
Willie Nelson|guitar|country
Garth Brooks|guitar|country
Bob Marley|guitar|reggae
Peter Tosh|guitar|reggae
Tony Iommi|guitar|metal
James Hetfield|guitar|metal
Brian May|guitar|rock
David Gilmour|guitar|rock
Stevie Ray Vaughan|guitar|blues
John Lee Hooker|guitar|blues
Robert Johnson|guitar|blues
Bob Dylan|guitar|folk
Joan Baez|guitar|folk
Woody Guthrie|guitar|folk
Bruce Springsteen|guitar|rock
Niccolo Paganini|violin|classical
Itzhak Perlman|violin|classical
Yehudi Menuhin|violin|classical
Jascha Heifetz|violin|classical
Stephane Grappelli|violin|jazz
Antonio Vivaldi|violin|classical
Joshua Bell|violin|classical
Yo-Yo Ma|cello|classical
Pablo Casals|cello|classical
Jacqueline du Pre|cello|classical
Mstislav Rostropovich|cello|classical
Louis Armstrong|trumpet|jazz
Miles Davis|trumpet|jazz
Dizzy Gillespie|trumpet|jazz
Chet Baker|trumpet|jazz
Wynton Marsalis|trumpet|jazz
John Coltrane|saxophone|jazz
Charlie Parker|saxophone|jazz
Sonny Rollins|saxophone|jazz
Stan Getz|saxophone|jazz
Coleman Hawkins|saxophone|jazz
Ornette Coleman|saxophone|jazz
Ringo Starr|drums|rock
John Bonham|drums|rock
Keith Moon|drums|rock
Neil Peart|drums|rock
Buddy Rich|drums|jazz
Art Blakey|drums|jazz
Lars Ulrich|drums|metal
Travis Barker|drums|punk
Paul McCartney|bass|rock
Jaco Pastorius|bass|jazz
Flea|bass|rock
Geddy Lee|bass|rock
Sid Vicious|bass|punk
Charles Mingus|bass|jazz
James Galway|flute|classical
Ian Anderson|flute|rock
Johann Sebastian Bach|organ|classical
Pete Seeger|banjo|folk
Elvis Presley|-|rock
Madonna|-|pop
Michael Jackson|-|pop
Whitney Houston|-|pop
Taylor Swift|-|pop
Rihanna|-|pop
Shakira|-|pop
Eminem|-|rap
Tupac Shakur|-|rap
Snoop Dogg|-|rap
Kanye West|-|rap
Luciano Pavarotti|-|opera
Maria Callas|-|opera
Placido Domingo|-|opera
Aretha Franklin|-|soul
Otis Redding|-|soul
Marvin Gaye|-|soul
James Brown|-|funk
Ella Fitzgerald|-|jazz
Billie Holiday|-|jazz
Shania Twain|-|country
Dolly Parton|-|country
Joey Ramone|-|punk
Ozzy Osbourne|-|metal
Mick Jagger|-|rock
David Bowie|-|rock
Jimmy Cliff|-|reggae
Metallica|-|metal
Iron Maiden|-|metal
Black Sabbath|-|metal
Megadeth|-|metal
Nirvana|-|rock
Radiohead|-|rock
Aerosmith|-|rock
ABBA|-|pop
Ramones|-|punk
Green Day|-|punk
Kraftwerk|-|electronic
Daft Punk|-|electronic
""";

    /// <summary>person|profession|citizenship (professions start with a consonant, so "a" always fits)</summary>
    public const string People = """
Isaac Newton|physicist|Britain
Niels Bohr|physicist|Denmark
Max Planck|physicist|Germany
Werner Heisenberg|physicist|Germany
Erwin Schrodinger|physicist|Austria
Richard Feynman|physicist|America
Stephen Hawking|physicist|Britain
Paul Dirac|physicist|Britain
James Clerk Maxwell|physicist|Britain
Galileo Galilei|physicist|Italy
Robert Oppenheimer|physicist|America
Albert Einstein|physicist|-
Marie Curie|chemist|-
Dmitri Mendeleev|chemist|Russia
Antoine Lavoisier|chemist|France
Linus Pauling|chemist|America
Alfred Nobel|chemist|Sweden
John Dalton|chemist|Britain
Louis Pasteur|chemist|France
Rosalind Franklin|chemist|Britain
Charles Darwin|biologist|Britain
Gregor Mendel|biologist|-
Alexander Fleming|biologist|Britain
Jane Goodall|biologist|Britain
James Watson|biologist|America
Francis Crick|biologist|Britain
Leonhard Euler|mathematician|Switzerland
Carl Friedrich Gauss|mathematician|Germany
Alan Turing|mathematician|Britain
Srinivasa Ramanujan|mathematician|India
David Hilbert|mathematician|Germany
Bernhard Riemann|mathematician|Germany
Emmy Noether|mathematician|Germany
Pierre de Fermat|mathematician|France
Blaise Pascal|mathematician|France
Ada Lovelace|mathematician|Britain
Henri Poincare|mathematician|France
Andrew Wiles|mathematician|Britain
Euclid|mathematician|-
Pythagoras|mathematician|-
Leonardo da Vinci|painter|Italy
Pablo Picasso|painter|Spain
Vincent van Gogh|painter|Netherlands
Claude Monet|painter|France
Rembrandt|painter|Netherlands
Salvador Dali|painter|Spain
Frida Kahlo|painter|Mexico
Raphael|painter|Italy
Edvard Munch|painter|Norway
Gustav Klimt|painter|Austria
Paul Cezanne|painter|France
Henri Matisse|painter|France
Edgar Degas|painter|France
Johannes Vermeer|painter|Netherlands
Diego Velazquez|painter|Spain
Francisco Goya|painter|Spain
Andy Warhol|painter|America
Jackson Pollock|painter|America
Caravaggio|painter|Italy
Titian|painter|Italy
Sandro Botticelli|painter|Italy
Paul Gauguin|painter|France
Wassily Kandinsky|painter|Russia
Rene Magritte|painter|Belgium
Joan Miro|painter|Spain
Georgia O'Keeffe|painter|America
Katsushika Hokusai|painter|Japan
Michelangelo|sculptor|Italy
Auguste Rodin|sculptor|France
Donatello|sculptor|Italy
Gian Lorenzo Bernini|sculptor|Italy
Henry Moore|sculptor|Britain
Alberto Giacometti|sculptor|Switzerland
Constantin Brancusi|sculptor|Romania
Homer|poet|-
Virgil|poet|-
Dante Alighieri|poet|Italy
John Keats|poet|Britain
Lord Byron|poet|Britain
Emily Dickinson|poet|America
Walt Whitman|poet|America
Robert Frost|poet|America
Pablo Neruda|poet|Chile
Rumi|poet|-
Alexander Pushkin|poet|Russia
Rabindranath Tagore|poet|India
Sylvia Plath|poet|America
William Wordsworth|poet|Britain
Percy Shelley|poet|Britain
Johann Wolfgang von Goethe|poet|Germany
Federico Garcia Lorca|poet|Spain
Leo Tolstoy|novelist|Russia
Fyodor Dostoevsky|novelist|Russia
Charles Dickens|novelist|Britain
Jane Austen|novelist|Britain
Mark Twain|novelist|America
Ernest Hemingway|novelist|America
George Orwell|novelist|Britain
Victor Hugo|novelist|France
Gabriel Garcia Marquez|novelist|Colombia
Virginia Woolf|novelist|Britain
James Joyce|novelist|Ireland
Haruki Murakami|novelist|Japan
Miguel de Cervantes|novelist|Spain
Herman Melville|novelist|America
Toni Morrison|novelist|America
Agatha Christie|novelist|Britain
Stephen King|novelist|America
Jules Verne|novelist|France
Alexandre Dumas|novelist|France
Gustave Flaubert|novelist|France
Marcel Proust|novelist|France
Thomas Mann|novelist|Germany
Umberto Eco|novelist|Italy
Chinua Achebe|novelist|Nigeria
Orhan Pamuk|novelist|Turkey
Yukio Mishima|novelist|Japan
William Shakespeare|playwright|Britain
Henrik Ibsen|playwright|Norway
Anton Chekhov|playwright|Russia
Moliere|playwright|France
Samuel Beckett|playwright|Ireland
Tennessee Williams|playwright|America
Arthur Miller|playwright|America
Bertolt Brecht|playwright|Germany
Oscar Wilde|playwright|Ireland
George Bernard Shaw|playwright|Ireland
Sophocles|playwright|-
Pyotr Tchaikovsky|composer|Russia
Richard Wagner|composer|Germany
Giuseppe Verdi|composer|Italy
Johannes Brahms|composer|Germany
Joseph Haydn|composer|Austria
Franz Schubert|composer|Austria
Claude Debussy|composer|France
Gustav Mahler|composer|Austria
Giacomo Puccini|composer|Italy
Antonin Dvorak|composer|Czechia
Edvard Grieg|composer|Norway
Jean Sibelius|composer|Finland
Maurice Ravel|composer|France
George Gershwin|composer|America
Hans Zimmer|composer|Germany
John Williams|composer|America
Ennio Morricone|composer|Italy
Plato|philosopher|-
Aristotle|philosopher|-
Socrates|philosopher|-
Immanuel Kant|philosopher|-
Friedrich Nietzsche|philosopher|Germany
Confucius|philosopher|China
Rene Descartes|philosopher|France
Jean-Paul Sartre|philosopher|France
Baruch Spinoza|philosopher|Netherlands
David Hume|philosopher|Britain
John Locke|philosopher|Britain
Thomas Hobbes|philosopher|Britain
Soren Kierkegaard|philosopher|Denmark
Voltaire|philosopher|France
Simone de Beauvoir|philosopher|France
Arthur Schopenhauer|philosopher|Germany
Bertrand Russell|philosopher|Britain
Steven Spielberg|director|America
Alfred Hitchcock|director|Britain
Stanley Kubrick|director|America
Martin Scorsese|director|America
Akira Kurosawa|director|Japan
Federico Fellini|director|Italy
Ingmar Bergman|director|Sweden
Quentin Tarantino|director|America
Christopher Nolan|director|Britain
Francis Ford Coppola|director|America
Hayao Miyazaki|director|Japan
Pedro Almodovar|director|Spain
Francois Truffaut|director|France
Satyajit Ray|director|India
Andrei Tarkovsky|director|Russia
Sergio Leone|director|Italy
George Lucas|director|America
James Cameron|director|Canada
Winston Churchill|politician|Britain
Abraham Lincoln|politician|America
Nelson Mandela|politician|South Africa
Mahatma Gandhi|politician|India
George Washington|politician|America
Otto von Bismarck|politician|Germany
Angela Merkel|politician|Germany
Margaret Thatcher|politician|Britain
Charles de Gaulle|politician|France
Franklin Roosevelt|politician|America
Barack Obama|politician|America
Vladimir Lenin|politician|Russia
Jawaharlal Nehru|politician|India
Charlie Chaplin|comedian|Britain
Rowan Atkinson|comedian|Britain
Robin Williams|comedian|America
Jerry Seinfeld|comedian|America
Anna Pavlova|dancer|Russia
Fred Astaire|dancer|America
Ansel Adams|photographer|America
Henri Cartier-Bresson|photographer|France
Annie Leibovitz|photographer|America
Gordon Ramsay|chef|Britain
Julia Child|chef|America
Jamie Oliver|chef|Britain
Paul Bocuse|chef|France
Florence Nightingale|nurse|Britain
Amelia Earhart|pilot|America
Charles Lindbergh|pilot|America
Yuri Gagarin|cosmonaut|Russia
Valentina Tereshkova|cosmonaut|Russia
""";
}
